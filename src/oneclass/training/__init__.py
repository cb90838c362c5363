"""Training loops: reconstruction models (AE/VAE) and the OC-NN."""
