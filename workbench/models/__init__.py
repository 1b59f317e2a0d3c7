"""Networks: the workbench's Vision Transformer and its EMA teacher.

- :mod:`.vit` -- :class:`~workbench.models.vit.VisionTransformer`, returning every layer's tokens
  (:class:`~workbench.models.vit.ViTOutput`);
- :mod:`.teacher` -- one EMA copy of the backbone shared by every objective that needs it.

Imports only torch: objectives, training and analysis build on it.
"""
