"""Safe offline RL with TORA: a reward planner and a cost planner composed with (w_r, w_c).

The safe-RL seed (seeds/001) trains one Diffusion-DPO planner that prefers higher reward and
one that prefers lower cost, and picks the weights at inference for a cost budget. This
package adds what that needs on top of the pipeline:

- :mod:`tora.safe.protocol`: the evaluation protocol and the episode seeds of selection and
  of the reported table, drawn from disjoint ranges;
- :mod:`tora.safe.rollout`: episodes whose policy sees the reward and cost spent so far;
- :mod:`tora.safe.controller`: weights for one cost budget, fixed or adapted during an episode;
- :mod:`tora.safe.select`: the weight search (coarse grid, then refine at the safe boundary);
- :mod:`tora.safe.policies`: TORA, BC, safe-only BC and a (return, cost)-conditioned
  diffusion planner behind one step-policy interface;
- :mod:`tora.safe.bench` and :mod:`tora.safe.table`: the resumable benchmark and its table;
- :mod:`tora.safe.toy`: a toy reward/cost task with a known answer, for tests.
"""
