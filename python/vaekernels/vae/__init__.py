from .model import FORMAT_VERSION, VAE, linear_warmup

__all__ = ["VAE", "linear_warmup", "FORMAT_VERSION"]
