"""Texts shown to the user in more than one place."""

NO_FOLDER = "Open a folder of images: File > Open Folder… (Ctrl+O), or drop a folder or an image here."

NO_MODEL = (
    "No model loaded: images and annotations show, but nothing is predicted.\n\n"
    "To get a model, open weights with Model > Open Weights… (Ctrl+M) or drop the file here:\n"
    "• a Mask R-CNN Studio checkpoint (.safetensors), e.g. from python -m engine train;\n"
    "• torchvision's COCO Mask R-CNN (maskrcnn_resnet50_fpn_coco-*.pth);\n"
    "• an ImageNet ResNet (.pth) to start training from (its heads are untrained)."
)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
