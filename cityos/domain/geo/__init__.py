"""Geography of the city: its wards' boundaries, their codes, and which ward a point lies in."""
