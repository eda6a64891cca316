"""Cross-department feeds: grants, subscriptions and the exactly-once feed republisher."""
