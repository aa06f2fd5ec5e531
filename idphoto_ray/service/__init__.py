"""The online service: Ray Serve deployments around the batch job's own photo path (see docs/service.md)."""
