"""Placeholder router for per-ward aggregation."""

from fastapi import APIRouter

router = APIRouter(tags=["records"])
