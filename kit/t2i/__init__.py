"""Text-to-image core for the diffusion editing series: ShapesWorld, a small text-conditioned diffusion model
trained on it offline, and prompt-adherence evaluation with the ShapesWorld oracle."""
