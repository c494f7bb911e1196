"""Packaging for tinygrad_llm: a readable autograd core and language models on NumPy/CuPy."""
from setuptools import find_packages, setup

setup(
    name="tinygrad_llm",
    version="0.1.0",
    description="A small tensor and autograd core, and the language models built on it",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tinygrad_llm", "tinygrad_llm.*"]),
    package_data={"tinygrad_llm": ["datasets/*.txt", "datasets/*.tsv", "datasets/*.md",
                                   "datasets/gpt2/*", "kernels/*.cu", "kernels/*.cuh"]},
    install_requires=["numpy", "regex", "tqdm", "safetensors"],
    extras_require={
        "gpu": ["cupy-cuda12x[ctk]"],
        "plot": ["matplotlib"],
        "dist": ["mpi4py", "mpich"],   # data parallelism: MPI and its mpiexec (docs/distributed.md)
        # tests/test_nvrtc.py also wants nvidia-cuda-nvrtc-cu12 (90 MB; .ci/run installs it)
        "dev": ["pytest", "hypothesis", "ruff"],
        # the documentation site (mkdocs.yml): `mkdocs serve`, `mkdocs build --strict`
        "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26"],
    },
)
