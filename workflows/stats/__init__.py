"""Statistics several layers use (losses, forecast tests, significance); imports no other workflows package."""
