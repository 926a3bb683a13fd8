# VOS, panoptic, semantic and entity metrics (re-exported; see each module for definitions).
from pixelground.eval.metrics.entity import evaluate_entity as evaluate_entity
from pixelground.eval.metrics.panoptic import PQStat as PQStat
from pixelground.eval.metrics.panoptic import evaluate_panoptic as evaluate_panoptic
from pixelground.eval.metrics.semantic import ConfusionMatrix as ConfusionMatrix
from pixelground.eval.metrics.semantic import evaluate_semantic as evaluate_semantic
from pixelground.eval.metrics.semantic import evaluate_semantic_folders as evaluate_semantic_folders
from pixelground.eval.metrics.semantic import semantic_scores as semantic_scores
from pixelground.eval.metrics.vos import boundary_f_measure as boundary_f_measure
from pixelground.eval.metrics.vos import db_statistics as db_statistics
from pixelground.eval.metrics.vos import evaluate_vos as evaluate_vos
from pixelground.eval.metrics.vos import region_similarity as region_similarity
from pixelground.eval.metrics.vos_protocols import expression_scores as expression_scores
from pixelground.eval.metrics.vos_protocols import semi_supervised_scores as semi_supervised_scores
from pixelground.eval.metrics.vos_protocols import unsupervised_scores as unsupervised_scores
