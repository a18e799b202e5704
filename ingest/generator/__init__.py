"""A seeded generator of a realistic telco world, for demos, tests and benchmarks.

Six source systems (CRM, billing, care/IVR, retail shops, app/web clickstream and
network probes) each know the same people by their own keys and spell them their
own way; journeys carry planted, documented patterns (bill shock -> care -> port-out
-> churn, bad cells -> complaints -> low CSAT, household churn, retention offers,
SIM-swap fraud, household offer tastes); the offers catalogue the product system
exports is written beside the sources (``OFFER_CATALOGUE_FILE``) and ground truth
beside the data. See ``docs/generator.md``.

``generate_world`` writes the files; ``iter_world`` yields the same records as
canonical ``Touchpoint`` objects with their true person, without touching disk.
"""

from ingest.generator._journeys import Parameters
from ingest.generator._records import SOURCE_FILES, FileFormat, SourceFile
from ingest.generator._world import (
    CHUNK_SIZE,
    GENERATOR_VERSION,
    OFFER_CATALOGUE_FILE,
    GenerationSummary,
    generate_world,
    iter_world,
)

__all__ = [
    "CHUNK_SIZE",
    "GENERATOR_VERSION",
    "OFFER_CATALOGUE_FILE",
    "SOURCE_FILES",
    "FileFormat",
    "GenerationSummary",
    "Parameters",
    "SourceFile",
    "generate_world",
    "iter_world",
]
