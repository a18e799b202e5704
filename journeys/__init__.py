"""Journey analytics: customer 360 reads today; frequency, similarity, milestones and KPIs next."""

from journeys.customer360 import (
    CustomerProfile,
    IdentifierLink,
    customer_identifiers,
    customer_journey,
    customer_profile,
)

__all__ = [
    "CustomerProfile",
    "IdentifierLink",
    "customer_identifiers",
    "customer_journey",
    "customer_profile",
]
