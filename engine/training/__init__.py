"""Training: the one ``train()`` loop for CLI, GUI and torchrun, its sample stream and resumable state."""
