"""Where the real datasets and their annotation files are published, and how to lay them out.

``xlm data check`` prints :func:`where_to_get` when a built-in dataset's root is missing,
empty or incomplete (fewer image files than the full set, or an empty split); the book's
reproduce chapter says the same. Nothing here downloads anything: every set has terms of
use a user must read and accept at its publisher (``xlm data fetch``, which clones the two
public sets of the real profile, prints their terms first).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """One folder or file of a dataset root and how many files it holds in the full set.

    Attributes:
        path: the path pattern under the root (e.g. ``jpg/NNNN.jpg``).
        count: files expected there (None: one file).
        what: what they are, in words.
    """

    path: str
    count: int | None  # files expected there (None: one file)
    what: str


@dataclass(frozen=True)
class DatasetSource:
    """Publisher, annotation source, terms and expected layout of one built-in dataset.

    Attributes:
        name: the dataset's name.
        title: its publication.
        images_from: where the images are published.
        annotations_from: where the annotations are published.
        terms: the terms of use.
        layout: the expected files under the root.
        images_expected: image files the full, annotated set holds.
        usable_expected: usable images among them, when some are known to be unusable (None:
            all of them).
    """

    name: str
    title: str
    images_from: str
    annotations_from: str
    terms: str
    layout: tuple[Layout, ...]
    images_expected: int  # image files the full, annotated set holds
    usable_expected: int | None = None  # usable images among them (None: all)

    def text(self) -> str:
        """The description ``xlm data check`` and the book print.

        Returns:
            Several lines: source of images and annotations, layout with counts, terms.
        """
        lines = [f"where to get {self.name} ({self.title}):",
                 f"  images: {self.images_from}",
                 f"  annotations: {self.annotations_from}",
                 f"  layout under ROOT ({self.images_expected} annotated images in the full set"
                 + ("" if self.usable_expected is None else f", {self.usable_expected} usable") + "):"]
        for item in self.layout:
            count = "1 file" if item.count is None else f"{item.count} files"
            lines.append(f"    {item.path:<34} {count:>10}  {item.what}")
        lines.append(f"  terms of use: {self.terms}")
        return "\n".join(lines)


SOURCES: dict[str, DatasetSource] = {
    "head": DatasetSource(
        name="head",
        title="ISBI 2015 cephalometric landmark challenge; Wang et al. 2016",
        images_from="the challenge's figshare release: 400 cephalograms, 8-bit BMP, 1935x2400 px, 0.1 mm/px",
        annotations_from="the same release, AnnotationsByMD/400_senior and 400_junior "
                         "(19 lines 'x,y' in pixels, then 8 class-label lines per file)",
        terms="the ISBI 2015 challenge's terms on the release page (research use; cite Wang et al. 2016)",
        layout=(
            Layout("RawImage/TrainingData/NNN.bmp", 150, "ids 001-150 (the paper's training part)"),
            Layout("RawImage/Test1Data/NNN.bmp", 100, "ids 151-300"),
            Layout("RawImage/Test2Data/NNN.bmp", 150, "ids 301-400 (151-400: the 250 test images)"),
            Layout("AnnotationsByMD/400_senior/NNN.txt", 400, "senior annotator, one file per image"),
            Layout("AnnotationsByMD/400_junior/NNN.txt", 400, "junior annotator (ground truth: mean)"),
        ),
        images_expected=400,
    ),
    "hand": DatasetSource(
        name="hand",
        title="Digital Hand Atlas, USC Image Processing and Informatics Lab",
        images_from="the Digital Hand Atlas of the USC Image Processing and Informatics Lab (JPG)",
        annotations_from="Payer et al.'s all.csv, 37 landmarks for 909 images (910 rows, "
                         "'id,x1,y1,...,x37,y37' in pixels, no header), from their public "
                         "HeatmapRegression repository (christianpayer/MedicalDataAugmentationTool-"
                         "HeatmapRegression, hand_xray/hand_xray_dataset/setup/all.csv; GPL-3.0)",
        terms="the Digital Hand Atlas's terms at USC IPILab; the GPL-3.0 of Payer et al.'s repository",
        layout=(
            Layout("jpg/NNNN.jpg", 909, "the atlas images that all.csv annotates (others are skipped, "
                   "with a note)"),
            Layout("all.csv", None, "Payer et al.'s landmarks"),
        ),
        images_expected=909,
    ),
    "chest": DatasetSource(
        name="chest",
        title="Shenzhen chest x-ray set, U.S. National Library of Medicine; Jaeger et al. 2014",
        images_from="the Shenzhen set of the U.S. National Library of Medicine (PNG, CHNCXR_NNNN_{0,1}.png)",
        annotations_from="Zhu et al.'s chest_labels.zip (6 landmarks for 279 images: line 1 '6', "
                         "then 6 lines 'x_ratio y_ratio') from their GU2Net repository "
                         "(ICT-MIRACLE-lab/YOLO_Universal_Anatomical_Landmark_Detection, "
                         "data/chest_labels.zip; MIT)",
        terms="the NLM's terms for the Shenzhen set (cite Jaeger et al. 2014); the MIT licence of Zhu "
              "et al.'s repository",
        layout=(
            Layout("pngs/CHNCXR_NNNN_0.png", 279, "the Shenzhen images chest_labels.zip annotates "
                   "(other images are skipped, with a note)"),
            Layout("labels/CHNCXR_NNNN_0.txt", 279, "chest_labels.zip unpacked"),
        ),
        images_expected=279,
    ),
    "ceph": DatasetSource(
        name="ceph",
        title="Hamedan University lateral cephalograms, two readers (19 ISBI-order landmarks)",
        images_from="the public repository vpouramin/Cephalometric-Landmarking-public, folder "
                    "hamedan_university_dataset/pictures (150 TIFs, 1340x1671 px; spacing not published)",
        annotations_from="the same folder: 'annotated by  Dr.mollabashi' (two spaces) and 'annotated by "
                         "Dr.farhadifar', one LabelMe JSON per image (labels l1..l19); 9 images have a "
                         "broken file (002 009 010 064 086 098 109 137 140) and are refused",
        terms="the repository states no licence (it is public; read no permission into that); "
              "cite the repository",
        layout=(
            Layout("hamedan_university_dataset/pictures/NNN.tif", 150, "the cephalograms (ROOT may "
                   "also be hamedan_university_dataset/ itself)"),
            Layout("hamedan_university_dataset/annotated by  Dr.mollabashi/NNN.json", 150, "reader 1"),
            Layout("hamedan_university_dataset/annotated by Dr.farhadifar/NNN.json", 150,
                   "reader 2 (ground truth: the mean)"),
        ),
        images_expected=150,
        usable_expected=141,
    ),
    "spine": DatasetSource(
        name="spine",
        title="AASCE 2019 / SpineWeb dataset 16 spine x-rays, official training split; Wu et al. 2017",
        images_from="SpineWeb dataset 16 (boostnet_labeldata), e.g. the copy in the public repository "
                    "AryanRaj315/EfficientDet.Pytorch, folder boostnet_labeldata/data/training (481 JPGs)",
        annotations_from="the same folder, labels/training/landmarks.csv (68 x ratios, then 68 y ratios "
                         "a row) in the order of labels/training/filenames.csv; 24 rows whose vertebrae "
                         "do not descend from T1 to L5 (one of them also with a landmark below its image) "
                         "are refused",
        terms="the images are SpineWeb's (dataset 16): SpineWeb's terms apply (cite Wu et al. 2017); "
              "the repository's MIT licence covers its authors' files, not the images",
        layout=(
            Layout("boostnet_labeldata/data/training/*.jpg", 481, "the training x-rays (ROOT may also "
                   "be boostnet_labeldata/ itself)"),
            Layout("boostnet_labeldata/labels/training/landmarks.csv", None, "one row an image"),
            Layout("boostnet_labeldata/labels/training/filenames.csv", None, "the image of each row"),
        ),
        images_expected=481,
        usable_expected=457,
    ),
}


def where_to_get(name: str) -> str | None:
    """Where the built-in dataset ``name`` is published and how to lay it out.

    Args:
        name: ``"head"``, ``"hand"``, ``"chest"``, ``"ceph"`` or ``"spine"`` (anything else:
            ``None``).

    Returns:
        The text of :meth:`DatasetSource.text`, or ``None``.
    """
    source = SOURCES.get(str(name))
    return None if source is None else source.text()


def incomplete_hint(name: str, images_found: int | None, usable: int, split_empty: bool) -> str | None:
    """:func:`where_to_get` when a built-in root looks incomplete, else ``None``.

    Args:
        name: the dataset name.
        images_found: image files the loader found (``None``: unknown).
        usable: usable annotated images among them.
        split_empty: a split the dataset needs is empty.

    Returns:
        A note that starts with how many images were found against the full set, or ``None``.
    """
    source = SOURCES.get(str(name))
    if source is None or images_found is None:
        return None
    expected = source.images_expected if source.usable_expected is None else source.usable_expected
    if usable >= expected and not split_empty:
        return None
    head = (f"this root holds {images_found} image files, {usable} usable annotated, of the "
            f"{source.images_expected} annotated images of the full {name} set"
            + ("" if source.usable_expected is None else f" ({expected} usable)"))
    return head + "\n" + source.text()
