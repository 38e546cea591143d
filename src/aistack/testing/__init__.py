"""Real servers and fakes for tests, shipped with the product (PostgreSQL, Slurm, Ray, S3)."""
