"""The reading path: from a drawing, scan or photo to the 28x28 images the model reads.

The stages, in the order an image goes through them (each module opens with what comes in,
what goes out and why the stage exists):

1. `ink`        grayscale -> white ink on black and its mask: polarity, background, light
2. `clean`      the mask without specks, ruled or grid lines and slivers of neighbouring cells
3. `normalize`  one digit -> cropped, scaled into a 20-px box, centred by mass in 28x28
4. `segment`    a row -> one piece per digit: pieces gathered into `groups`, `cuts` through
                touching digits, and the reading chosen `by_recognition` (the model asked)

`pipeline` chains them (`preprocess_single`, `preprocess_multi`, and the shortcuts for clean
canvas drawings). Below every stage, `types` holds what the stages hand each other and the
model's input sizes, and `measure` the measures they share. Imports point down only:

    pipeline
    segment -> by_recognition -> cuts -> groups
               by_recognition -> normalize
    ink -> clean
    measure -> types
"""
