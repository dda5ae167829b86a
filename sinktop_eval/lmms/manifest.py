"""Entry point (group ``lmms_eval.models``) that makes ``--model sinktop`` resolvable by lmms-eval."""
from lmms_eval.models.registry_v2 import ModelManifest

MANIFEST = ModelManifest(model_id="sinktop", simple_class_path="sinktop_eval.lmms.model.SinktopModel")
