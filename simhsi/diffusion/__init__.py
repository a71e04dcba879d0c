"""simhsi.diffusion: the DDPM abundance generator (training here; sampling in the sampler modules).

Training side: :mod:`~simhsi.diffusion.config` (``TrainConfig``), :mod:`~simhsi.diffusion.data`
(patches, channel order, global scaling), :mod:`~simhsi.diffusion.model` (U-Net, class labels, model
directory) and :mod:`~simhsi.diffusion.train` (the loop). Nothing heavy is imported here.
"""
