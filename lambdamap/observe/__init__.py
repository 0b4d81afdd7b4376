"""Looking at jobs: summaries and cost, timeline plots, and the jobs kept in shared storage."""
