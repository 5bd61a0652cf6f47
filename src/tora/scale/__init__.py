"""Ray as the engine of what fans out (issue 20): the one place that imports Ray and starts or
joins it (``session``), a preference sweep over Ray actors (``sweep``, ``tora evaluate
--ray``) and objectives fine-tuned side by side as Ray tasks (``finetune``, ``tora finetune
--ray``). Suites' cells run on Ray through :mod:`tora.bench.ray_executor`.

Ray is optional (the ``scale`` extra): nothing here imports it until a Ray run starts, so the
package and every serial command work without it.
"""
