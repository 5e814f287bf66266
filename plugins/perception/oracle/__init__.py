"""Ground-truth perception stages for synthetic scenes (``oracle``): each reads the exact SceneTrack beside a video.

Every learned stage of ``video-tracks`` has an ``oracle`` twin, so any stage can be replaced by the truth and its own
error measured (``docs/perception.md``). The truth of a clip is the SceneTrack ``<video stem>.npz`` in the video's
folder (as ``synth-scenes`` writes it), or in the folder of the ``truth`` option. What each oracle returns:

* detector: the truth boxes of the objects visible on the frame whose label is one of the phrases, score 1;
* tracker: per prompt box, the truth object it overlaps best (IoU >= ``min_iou``) followed exactly: its truth boxes,
  and filled-box masks (a SceneTrack stores boxes, not masks);
* reconstructor: the truth camera poses and intrinsics, and for each tracked mask the truth centroid of the object it
  covers; its point map is a proxy (object-depth planes) for the learned stages that read it;
* orientation: the truth angles of the object a mask covers, confidence 1.

Modules: :mod:`.truth` (finding and sampling the truth, matching boxes to it), :mod:`.detector`, :mod:`.tracker`,
:mod:`.reconstructor`, :mod:`.orientation`.
"""

from vdpm_harness import hookimpl


@hookimpl
def register_detectors(register):
    register(
        "oracle",
        "vdpm_harness_plugins.perception.oracle.detector:OracleDetector",
        description="Ground truth of a synthetic scene (the SceneTrack beside the video): its visible boxes",
    )


@hookimpl
def register_trackers(register):
    register(
        "oracle",
        "vdpm_harness_plugins.perception.oracle.tracker:OracleTracker",
        description="Ground truth of a synthetic scene: its boxes, followed exactly",
    )


@hookimpl
def register_reconstructors(register):
    register(
        "oracle",
        "vdpm_harness_plugins.perception.oracle.reconstructor:OracleReconstructor",
        description="Ground truth of a synthetic scene: camera poses, intrinsics and object centroids",
    )


@hookimpl
def register_orientation_estimators(register):
    register(
        "oracle",
        "vdpm_harness_plugins.perception.oracle.orientation:OracleOrientation",
        description="Ground truth of a synthetic scene: the agents' angles",
    )
