"""Text-to-image core for the diffusion editing series: ShapesWorld, a small text-conditioned diffusion model
trained on it offline, and prompt-adherence evaluation with the ShapesWorld oracle."""

# Read by kit.catalog: the committed ShapesWorld model follows colours but not yet shapes (see notebooks/t2i/README.md).
__status__ = "in progress"
