"""Texts shown to the user in more than one place, and the bar that shows messages."""

from PySide6.QtWidgets import QLabel

NO_FOLDER = "Open a folder of images: File > Open Folder… (Ctrl+O), or drop a folder or an image here."

NO_MODEL = (
    "No model loaded: images and annotations show, but nothing is predicted.\n\n"
    "To get a model, open weights with Model > Open Weights… (Ctrl+M) or drop the file here:\n"
    "• a Mask R-CNN Studio checkpoint (.safetensors), e.g. from python -m engine train;\n"
    "• torchvision's COCO Mask R-CNN (maskrcnn_resnet50_fpn_coco-*.pth);\n"
    "• an ImageNet ResNet (.pth) to start training from (its heads are untrained)."
)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")

UNREADABLE = "This image could not be read; see the message above. A / D: other images."


class MessageBar:
    """The window's ``Messages`` (gui/session/protocols.py): the status line and the red error banner."""

    def __init__(self, banner: QLabel, status: QLabel) -> None:
        self.banner, self.status = banner, status
        self.scope = ""  # what the banner is about: which events take it away

    def show_status(self, text: str) -> None:
        self.status.setText(text)

    def show_error(self, message: str, scope: str = "action") -> None:
        """A red banner over the canvas until what it is about is resolved (``scope``): "result" (an
        inference error: the next good result), "image" (the next image that loads), "model" (a model
        that loads), "save" (the next successful save), "action" (anything else: the next image)."""
        self.scope = scope
        self.banner.setText(message)
        self.banner.show()
        self.status.setText(message.splitlines()[0] if message else "")

    def hide_error(self, *scopes: str) -> None:
        """Hide the banner; with ``scopes``, only when it is about one of them."""
        if not scopes or self.scope in scopes:
            self.banner.hide()

    def error_text(self) -> str:
        return self.banner.text() if self.banner.isVisible() else ""
