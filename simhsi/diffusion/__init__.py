"""simhsi.diffusion"""
