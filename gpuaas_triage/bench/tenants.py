"""The synthetic tenants of the benchmark: orgs, their projects, apps and actors."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: App slugs and the runtime backend each runs on.
APP_CATALOGUE = (
    ("jupyterlab", "kubernetes"),
    ("vscode-server", "kubernetes"),
    ("comfyui", "kubernetes"),
    ("vllm", "kubernetes"),
    ("triton-inference", "kubernetes"),
    ("mlflow", "kubernetes"),
    ("label-studio", "kubernetes"),
    ("slurm-cluster", "slurm-operator"),
    ("ray-cluster", "kuberay-operator"),
)
ENVIRONMENTS = ("dev", "test", "stage", "prod", "research", "ml")
ORG_WORDS = (
    "acme",
    "borealis",
    "cobalt",
    "delta",
    "ember",
    "fjord",
    "granite",
    "helix",
    "indigo",
    "juniper",
    "kestrel",
    "lumen",
    "meridian",
    "nimbus",
    "onyx",
    "polaris",
    "quartz",
    "raven",
    "sierra",
    "tundra",
    "umbra",
    "vertex",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
)


@dataclass(frozen=True, slots=True)
class App:
    slug: str
    instance_id: str
    runtime_backend: str


@dataclass(frozen=True, slots=True)
class Project:
    org_id: str
    project_id: str
    operating_mode: str
    control_plane_scope: str
    tenant_boundary_mode: str
    apps: tuple[App, ...]
    service_account_id: str
    users: tuple[str, ...]


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def build_projects(rng: random.Random, orgs: int) -> list[Project]:
    """``orgs`` orgs with one to four projects each; about one org in six runs on
    the platform_managed plane, the rest on tenant_dedicated project planes."""
    projects: list[Project] = []
    for number in range(orgs):
        org_id = f"org-{ORG_WORDS[number % len(ORG_WORDS)]}-{number:04d}"
        managed = rng.random() < 0.16
        mode = "platform_managed" if managed else "tenant_dedicated"
        for env in rng.sample(ENVIRONMENTS, rng.randint(1, 4)):
            project_id = f"proj-{org_id.removeprefix('org-')}-{env}"
            apps = tuple(
                App(slug, f"ai-{_hex(rng, 12)}", backend)
                for slug, backend in rng.sample(APP_CATALOGUE, rng.randint(1, 4))
            )
            projects.append(
                Project(
                    org_id=org_id,
                    project_id=project_id,
                    operating_mode=mode,
                    control_plane_scope="platform" if managed else "project",
                    tenant_boundary_mode="tenant" if managed else "project",
                    apps=apps,
                    service_account_id=f"sa-{env}-deployer-{_hex(rng, 6)}",
                    users=tuple(f"u-{_hex(rng, 10)}" for _ in range(rng.randint(1, 5))),
                )
            )
    return projects
