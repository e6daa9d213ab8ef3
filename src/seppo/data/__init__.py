"""Winner sources, image decoding and transforms, and the latent/text-embedding cache."""
