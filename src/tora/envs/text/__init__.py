"""Text games as environments: tora-rl's JSON game format (docs/text_games.md), the games
shipped in ``games/``, :class:`~tora.envs.text.env.TextGameEnv` (text observations, a mask
over a variable number of choices, points as reward, annotations in ``info``) and the adapter
for a user's local copy of MACHIAVELLI (:mod:`tora.envs.text.machiavelli`).

The CPL policies, their data and the MACHIAVELLI metrics that use these envs live in
:mod:`tora.text`.
"""
