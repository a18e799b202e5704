"""Identity resolution: probabilistic linkage with Splink, checked on FEBRL and generated worlds."""
