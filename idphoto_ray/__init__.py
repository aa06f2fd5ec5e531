"""idphoto-ray: batch ID photos on Ray Data (read → segment → refine → geometry → compose → write)."""

__version__ = "0.1.0"
