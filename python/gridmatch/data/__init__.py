"""Data: the datasets, photo catalogues, image loading and the shop benchmarks.

The Python half of the core's ``data`` and ``images`` areas, one module per concept:

===================  ===============================================================
module               what it holds
===================  ===============================================================
``datasets``         MNIST / Fashion-MNIST: finding, downloading, reading IDX files
``catalogue``        :class:`ImageCatalogue`: photo paths, ids, classes and splits
``catalogue_checks`` the checks of a catalogue's ids, classes, split names and paths
``catalogue_files``  reading catalogues from folders and CSV files
``splits``           split names drawn by product (``ImageCatalogue.with_split``)
``inshop_files``     DeepFashion In-shop's partition file
``inshop``           :class:`InShop`: an In-shop folder as catalogues and arrays
``loader``           :class:`ImageLoader`: catalogues streamed as torch batches
``augment``          the image pipeline's augmentation settings
``decode``           decoding single images (Pillow) to square arrays
``shop``             the generated shop benchmark (:func:`fashion_shop`, :func:`distort`)
===================  ===============================================================

Users import these names from :mod:`gridmatch.datasets`.
"""
