"""Placeholder router for OGC API - Features."""

from fastapi import APIRouter

router = APIRouter(prefix="/ogc", tags=["ogc-api-features"])
