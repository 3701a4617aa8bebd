"""The string reader's training: synthetic numbers from the train splits, a CNN + BiLSTM + CTC
model that reads a whole row at once, and its publication as `model_store/digit_string/<N>/`.

    python -m training.strings --help

Modules, in the order data flows: `sources` (digits by writer), `pen` (cursive joins),
`marks` (non-digit ink), `paper` (scan and photo looks), `compose` (one synthetic number),
`dataset` (many, in parallel, as model rows), `model` (the network and its CTC loss),
`train` (fit, choose the checkpoint, publish).
"""
