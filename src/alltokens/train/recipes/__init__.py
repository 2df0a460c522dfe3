"""Recipes: functions that wire a model, data, an objective and the `Trainer` together for one task.

They define no layers and hold no training logic of their own (torchtune's recipes, open_clip_train).
"""
