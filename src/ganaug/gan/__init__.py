"""The GAN stage: the paper's Wasserstein GAN, its limited-data variants, training and sampling.

nets.py (generator, critic), losses.py (WGAN / WGAN-GP), diffaug.py (DiffAugment), state.py (the
trainable state and its checkpoint), monitor.py (log.csv, NaN guard), train.py (the loop),
sample.py (per-seed sampling, critic scores).
"""
