"""The pure streaming core: artifact correction -> windows -> HRV metrics -> stress indices -> state."""
