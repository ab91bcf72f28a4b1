"""The lab's classifier setting, stated once: ``LinearSVC(C=1)`` on L2-normalised rows.

A foundation module (it imports nothing), so the SVM code, the checks, the widgets,
the experiments and the command line all take the same value without pointing upward.
The other defaults have their home beside what they choose from: the network
(``DEFAULT_NETWORK``, ``DEFAULT_WEIGHTS``) in :mod:`tplib.registry`, the data set
(``DEFAULT_DATASET``) in :mod:`tplib.catalog`, the run settings (download, progress
bars, engine) in the active profile (:func:`tplib.profile.profile_defaults`).
"""

#: LinearSVC's C in the lab (handout section 2.2; C between 0.1 and 10 scores about the same).
DEFAULT_C = 1.0
