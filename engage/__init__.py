"""Real-time engagement (incidents, queue, feedback, cell sentiment): not built yet."""

__all__: list[str] = []
