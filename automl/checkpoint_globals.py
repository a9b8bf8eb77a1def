"""The globals an ultralytics checkpoint may name, one by one, and how its pickle may use each.

Read by `automl.weights`. The list was built by scanning the checkpoints ultralytics writes
(`last.pt` and the stripped `best.pt` of a training) and a checkpoint of every model in
ultralytics' `cfg/models` (detect, segment, pose, obb, classify, RT-DETR, YOLO-World, YOLOE);
`tests/test_weights.py` scans them again against the installed ultralytics and fails on any
global missing here. A name absent from this installation is refused like an unknown one.
"""

from __future__ import annotations

# Callables a checkpoint's pickle calls (REDUCE): tensors, storages' containers, plain values.
CALLED: dict[str, tuple[str, ...]] = {
    "torch._utils": ("_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"),
    "torch": ("Size", "device"),
    "collections": ("OrderedDict",),
    "builtins": ("set", "frozenset", "slice", "complex", "bytearray"),
    "_codecs": ("encode",),  # how protocol 2 writes bytes
    "pathlib": ("PosixPath",),
    # numbers and their dtypes written by numpy (a best_fitness of older releases)
    "numpy": ("dtype",),
    "numpy.dtypes": ("Float64DType", "Float32DType", "Int64DType"),
    "numpy._core.multiarray": ("scalar",),
    "numpy.core.multiarray": ("scalar",),
    "ultralytics.utils": ("IterableSimpleNamespace",),  # train_args of some releases
    # a trained classification model's inference transforms: their resize mode, an enum member
    "torchvision.transforms.functional": ("InterpolationMode",),
}

# Values a pickle may name without calling them: storage types (in a tensor's persistent id) and
# dtypes.
NAMED: dict[str, tuple[str, ...]] = {
    "torch": ("FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage", "LongStorage",
              "IntStorage", "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage",
              "float16", "float32", "bfloat16", "float64", "int64", "int32", "uint8", "bool"),
}

# The model's classes: created empty (NEWOBJ) and filled with their saved state (BUILD), never
# called, so no constructor of theirs runs on a file's arguments (DetectionModel's builds a model
# from a config dict, which ultralytics may evaluate).
BUILT: dict[str, tuple[str, ...]] = {
    "torch.nn.modules.activation": ("GELU", "MultiheadAttention", "ReLU", "SiLU", "Tanh",
                                    "LeakyReLU", "Hardswish", "Sigmoid"),
    "torch.nn.modules.batchnorm": ("BatchNorm2d",),
    "torch.nn.modules.container": ("ModuleList", "Sequential"),
    "torch.nn.modules.conv": ("Conv2d", "ConvTranspose2d"),
    "torch.nn.modules.dropout": ("Dropout",),
    "torch.nn.modules.linear": ("Identity", "Linear", "NonDynamicallyQuantizableLinear"),
    "torch.nn.modules.normalization": ("LayerNorm",),
    "torch.nn.modules.padding": ("ZeroPad2d",),
    "torch.nn.modules.pooling": ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "MaxPool2d"),
    "torch.nn.modules.sparse": ("Embedding",),
    "torch.nn.modules.upsampling": ("Upsample",),
    "ultralytics.nn.modules.block": (
        "A2C2f", "AAttn", "ABlock", "AConv", "ADown", "Attention", "BNContrastiveHead",
        "Bottleneck", "C2", "C2PSA", "C2f", "C2fAttn", "C2fCIB", "C3", "C3Ghost", "C3k", "C3k2",
        "CBFuse", "CBLinear", "CIB", "ContrastiveHead", "DFL", "ELAN1", "GhostBottleneck",
        "HGBlock", "HGStem", "ImagePoolingAttn", "MaxSigmoidAttnBlock", "PSA", "PSABlock",
        "Proto", "Proto26", "RealNVP", "RepBottleneck", "RepC3", "RepCSP", "RepNCSPELAN4",
        "RepVGGDW", "ResNetBlock", "ResNetLayer", "Residual", "SAVPE", "SCDown", "SPP",
        "SPPELAN", "SPPF", "SwiGLUFFN"),
    "ultralytics.nn.modules.conv": ("Concat", "Conv", "DWConv", "GhostConv", "LightConv",
                                    "RepConv"),
    "ultralytics.nn.modules.head": (
        "Classify", "Detect", "OBB", "OBB26", "Pose", "Pose26", "RTDETRDecoder", "Segment",
        "Segment26", "WorldDetect", "YOLOEDetect", "YOLOESegment", "YOLOESegment26",
        "v10Detect"),
    "ultralytics.nn.modules.transformer": ("AIFI", "DeformableTransformerDecoder",
                                           "DeformableTransformerDecoderLayer", "MLP",
                                           "MSDeformAttn"),
    # a trained classification model's inference transforms (ultralytics' classify_transforms)
    "torchvision.transforms.transforms": ("CenterCrop", "Compose", "Normalize", "Resize",
                                          "ToTensor"),
    "ultralytics.nn.tasks": ("ClassificationModel", "DetectionModel", "OBBModel", "PoseModel",
                             "RTDETRDetectionModel", "SegmentationModel", "WorldModel",
                             "YOLOEModel", "YOLOESegModel"),
}
