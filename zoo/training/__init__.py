"""Training loops shared by domains and methods (GAN generator; encoders arrive with their plugins)."""
