"""Input and output models, the parser that turns raw bytes into them, the codec."""
