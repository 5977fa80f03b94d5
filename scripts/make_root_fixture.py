"""Write the libDMRoot test fixture: a small ROOT run with known events, and its grain lists.

Run with the PyPI ``root`` wheel in its own environment (never a project dependency)::

    python3 -m venv /tmp/rootvenv && /tmp/rootvenv/bin/pip install root==0.1a12 numpy
    /tmp/rootvenv/bin/python scripts/make_root_fixture.py [--out data/fixtures]

It writes, under ``--out``:

- ``libdmroot_run.dm.root``: the class layout and member names of libDMRoot
  (research/physics.md c.1-c.2; VGentile87/DMDS headers): TTree ``Vdmr`` (one entry per view:
  ``hd`` DMRViewHeader, TClonesArrays ``cl`` DMRCluster, ``gr`` DMRGrain, ``mt``
  DMRMicrotrack, ``im`` DMRImageCl, ``fr`` DMRFrame), TTree ``Frames`` (``fr`` DMRFrameRaw, one
  entry per camera frame, 8-bit ``eImg`` TArrayC buffer) and the ``RunHeader`` object;
- ``libdmroot_grains_comma.txt``: the grain list as 11 comma-separated fields (HeaderID,
  ViewID, GrainID, the 8 best-focus cluster indices, -1 for a missing polarisation);
- ``libdmroot_grains_trflag.txt``: the same lines followed by ``tr_flag n_pol`` separated by
  spaces;
- ``libdmroot_expected.npz``: the expected crops of the convertible events, in grain-list
  order, (N, 8, 40, 40) uint8, with the beam direction and the event kinds.

The events are known patterns, so the converter's crop window, polarisation order and
orientation can be checked: in every polarisation p an event is a Gaussian spot (sigma
2.6 px, 70 ADU over a 24 ADU background with 0.8 ADU noise) whose centre moves by
``(p - 3.5) * 0.6 px`` along the beam direction ``BEAM_PHI_DEG`` = 30 degrees (a track: the
barycenter moves with the polariser) or stays put (``fog``). Directions are in the stage
frame, from +x towards +y. The expected crop has columns along stage x and rows along stage
y (the converter's convention, emulsion_core/formats/convert.py); the camera has ``pixY < 0``, so it is
pasted into the frames upside down. What the converter must get right:

- the window: camera pixels ``[u0 - 20, u0 + 20) x [v0 - 20, v0 + 20)`` with ``(u0, v0)``
  the integer part of the first polarisation's best-focus cluster in its own frame
  (physics.md c.3); every frame of a view has its own encoder offset (``fr.x``, ``fr.y``), so
  using the view centre or another frame moves the window by several pixels;
- the z-level: each event is also drawn, defocused (wider, dimmer), in the other z-level;
  one event has the best focus of polarisations 4-7 one z-level higher;
- ``flags``: every z-level also has a merged frame (flags 1, ipol 0) and the 180-degree repeat
  of polarisation 0 (flags 2, ipol 0, pol 180) showing the spot where a ninth polarisation
  would put it; the repeat comes before polarisation 0 in view 0 and after it elsewhere;
- bad grain lines, each to be skipped and counted: a crop crossing the frame edge, a missing
  polarisation (-1), a cluster index out of range, a cluster of the wrong polarisation, a
  cluster whose frame index is not in the view, a raw frame missing from ``Frames``, a view
  with flag 1, a view entry and a grain index out of range.

The file is deterministic in content (seeded noise); ROOT's own timestamps differ per run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

NPIX_X, NPIX_Y = 128, 96  # small camera frames keep the file small
PIX_X_UM, PIX_Y_UM = 0.02752, -0.02752  # um per pixel; y axis flipped as in the experiment
N_Z = 2  # z-levels per view
CROP = 40
BEAM_PHI_DEG = 30.0
STEP_PX = 0.6  # barycenter step per polarisation, pixels
BACKGROUND_ADU, NOISE_ADU, AMP_ADU, SIGMA_PX = 24.0, 0.8, 70.0, 2.6
SEED = 20240611

# Events: (view entry, window column U, window row V, kind, z-level of each polarisation's
# best-focus cluster). The window is camera [U-20, U+20) x [V-20, V+20).
EVENTS = [
    (0, 24, 24, "track", [0] * 8),
    (0, 64, 24, "track", [0] * 4 + [1] * 4),  # best focus of pols 4-7 one level higher
    (0, 104, 24, "fog", [1] * 8),
    (0, 24, 72, "track", [0] * 8),
    (0, 124, 72, "track", [0] * 8),  # crosses the frame edge: skipped
    (1, 24, 24, "track", [1] * 8),
    (1, 64, 24, "fog", [0] * 8),
    (1, 104, 24, "track", [0] * 8),
    (1, 24, 72, "track", [0] * 8),  # listed with pol 5 missing: skipped
    (1, 64, 72, "track", [0] * 8),  # listed with a cluster index out of range: skipped
    (1, 104, 72, "track", [0] * 8),  # listed with pol 2 pointing at the pol 3 cluster: skipped
    (2, 24, 24, "track", [1] * 8),
    (2, 64, 24, "track", [0] * 8),  # its raw frame (iz 0, ipol 3) is missing: skipped
    (3, 24, 24, "track", [0] * 8),  # view flag 1: skipped
]
VIEW_FLAG = {0: 0, 1: 0, 2: 0, 3: 1}
EXTRA_FIRST = {0: True, 1: False, 2: False, 3: False}  # flags-2 frame before pol 0?
MISSING_RAW = {(2, 0, 3)}  # (view, iz, ipol) absent from the Frames tree
OTHER_GRAINS = {0: 7, 1: 3, 2: 5, 3: 2}  # grains in gr besides the events (not in the list)

CLASSES = r"""
#include <TObject.h>
#include <TArrayC.h>
#include <TArrayF.h>
#include <TString.h>
#include <TDatime.h>
#include <TClonesArray.h>
#include <TTree.h>
#include <TFile.h>

class DMRAffine2D : public TObject {
 public:
  Double_t a11, a12, a21, a22, b1, b2;
  DMRAffine2D() : a11(1), a12(0), a21(0), a22(1), b1(0), b2(0) {}
  virtual ~DMRAffine2D() {}
  ClassDefInline(DMRAffine2D, 1);
};

class DMRViewHeader : public TObject {
 public:
  UInt_t id;
  Int_t vid, aid, col, row, flag, side;
  Float_t x, y, z, rmax, xmin, xmax, ymin, ymax, zmin, zmax;
  TArrayF zlayers, polsteps;
  Int_t ncl, ngr, nmt, nim, nfr, track, event;
  Double_t time;
  DMRAffine2D aff;
  DMRViewHeader() {}
  virtual ~DMRViewHeader() {}
  ClassDefInline(DMRViewHeader, 1);
};

class DMRCluster : public TObject {
 public:
  UInt_t id, id_f, icp, flags;
  Float_t x, y, z, lx, ly, phi, gh, gb, gq;
  UInt_t npx, vol;
  Float_t pol;
  Int_t ipol, color, img, ifr, igr, imt, is_nt;
  DMRCluster() {}
  virtual ~DMRCluster() {}
  ClassDefInline(DMRCluster, 1);
};

class DMRGrain : public TObject {
 public:
  UInt_t id, icp, flags;
  Float_t x, y, z;
  UInt_t ncl, npx, vol;
  Float_t lx, ly, lz, phi, theta;
  Int_t frFirst, frLast;
  Float_t pol;
  Int_t ipol, ibfc, imt, ipt, is_nt;
  DMRGrain() {}
  virtual ~DMRGrain() {}
  ClassDefInline(DMRGrain, 1);
};

class DMRMicrotrack : public TObject {
 public:
  UInt_t id, flags, ncl, ngr;
  Int_t frFirst, frLast;
  UInt_t frTrig, npx, vol;
  Float_t limX0, limY0, limZ0, limX1, limY1, limZ1, x, y, z, phi, theta;
  Float_t sigX, sigY, sigZ, sigPhi, sigTheta, chi2, len, score;
  Int_t is_pt;
  DMRMicrotrack() {}
  virtual ~DMRMicrotrack() {}
  ClassDefInline(DMRMicrotrack, 2);
};

class DMRImage : public TObject {
 public:
  Int_t cols, rows, sensor, color;
  Float_t pol;
  Int_t ipol, npx;
  Double_t pxvol;
  Float_t ll, thres;
  UInt_t flags;
  TArrayC *eImg;
  DMRImage() : cols(0), rows(0), sensor(0), color(0), pol(0), ipol(0), npx(0), pxvol(0),
               ll(0), thres(0), flags(0), eImg(0) {}
  virtual ~DMRImage() { delete eImg; }
  void SetImage(Int_t c, Int_t r, const char *buf) {
    cols = c; rows = r; delete eImg; eImg = new TArrayC(c * r, buf);
  }
  ClassDefInline(DMRImage, 2);
};

class DMRImageCl : public DMRImage {
 public:
  UInt_t id;
  Int_t x, y, icl, ifr;
  DMRImageCl() : id(0), x(0), y(0), icl(-1), ifr(-1) {}
  virtual ~DMRImageCl() {}
  ClassDefInline(DMRImageCl, 1);
};

class DMRFrame : public DMRImage {
 public:
  UInt_t id, uid;
  Int_t ix, iy, iz;
  Float_t x, y, z;
  Double_t time;
  Int_t ncl;
  DMRFrame() : id(0), uid(0), ix(0), iy(0), iz(0), x(0), y(0), z(0), time(0), ncl(0) {}
  virtual ~DMRFrame() {}
  ClassDefInline(DMRFrame, 1);
};

class DMRFrameRaw : public DMRFrame {
 public:
  Int_t ventr, vid, aid, col, row, side;
  DMRFrameRaw() : ventr(-1), vid(-1), aid(-1), col(-1), row(-1), side(-1) {}
  virtual ~DMRFrameRaw() {}
  ClassDefInline(DMRFrameRaw, 1);
};

class DMRRunHeader : public TObject {
 public:
  Int_t id;
  Int_t flags[20];
  TDatime startTime;
  Double_t startTimeSys;
  Int_t nareas;
  TString comment;
  Int_t plateID;
  Float_t hUp, hBase, hDown, shrinkageUp, shrinkageDown;
  Int_t npixX, npixY;
  Float_t pixX, pixY;
  DMRRunHeader() : startTime(2019, 4, 12, 10, 0, 0) {}
  virtual ~DMRRunHeader() {}
  ClassDefInline(DMRRunHeader, 1);
};

// Writer: the Python side passes flat arrays (one row per object), this fills the trees.
// hd: per view 12 doubles (vid aid col row flag side x y z ncl ngr nfr)
// cl: per cluster 20 doubles (view id_f flags x y z lx ly phi gh gb gq npx vol pol ipol ifr igr iz _)
// gr: per grain 17 doubles (view flags x y z ncl npx vol lx ly lz phi theta frFirst frLast ibfc _)
// fr: per frame 10 doubles (view iz ipol flags pol x y z raw(0/1) _), then the images
void write_dmr_fixture(const char *fname, int nview, const double *hd,
                       int ncl, const double *cl, int ngr, const double *gr,
                       int nfr, const double *fr, const unsigned char *img, int cols, int rows,
                       int npixX, int npixY, float pixX, float pixY) {
  TFile f(fname, "RECREATE");
  f.SetCompressionSettings(209);  // LZMA level 9: a small file (libDMRoot itself uses zlib level 2)
  TTree vdmr("Vdmr", "Scanning Viewes data in DMR format");
  DMRViewHeader *HD = new DMRViewHeader();
  TClonesArray *CL = new TClonesArray("DMRCluster", 64);
  TClonesArray *GR = new TClonesArray("DMRGrain", 16);
  TClonesArray *MT = new TClonesArray("DMRMicrotrack", 4);
  TClonesArray *IM = new TClonesArray("DMRImageCl", 4);
  TClonesArray *FR = new TClonesArray("DMRFrame", 32);
  vdmr.Branch("hd", "DMRViewHeader", &HD);
  vdmr.Branch("cl", &CL);
  vdmr.Branch("gr", &GR);
  vdmr.Branch("mt", &MT);
  vdmr.Branch("im", &IM);
  vdmr.Branch("fr", &FR);
  for (int v = 0; v < nview; v++) {
    CL->Clear("C"); GR->Clear("C"); MT->Clear("C"); IM->Clear("C"); FR->Clear("C");
    const double *h = hd + 12 * v;
    HD->id = v; HD->vid = (int)h[0]; HD->aid = (int)h[1]; HD->col = (int)h[2]; HD->row = (int)h[3];
    HD->flag = (int)h[4]; HD->side = (int)h[5]; HD->x = h[6]; HD->y = h[7]; HD->z = h[8];
    HD->rmax = -1; HD->xmin = -30; HD->xmax = 30; HD->ymin = -22.5; HD->ymax = 22.5;
    HD->zmin = -25; HD->zmax = 25;
    HD->zlayers.Set(0);
    HD->polsteps.Set(8);
    for (int p = 0; p < 8; p++) HD->polsteps[p] = 22.5 * p;
    HD->ncl = (int)h[9]; HD->ngr = (int)h[10]; HD->nmt = 0; HD->nim = 0; HD->nfr = (int)h[11];
    HD->track = -1; HD->event = -1; HD->time = 1000.0 * v;
    int k = 0;
    for (int i = 0; i < ncl; i++) {
      const double *c = cl + 20 * i;
      if ((int)c[0] != v) continue;
      DMRCluster *o = new ((*CL)[k]) DMRCluster();
      o->id = k; o->id_f = (int)c[1]; o->icp = 0; o->flags = (int)c[2];
      o->x = c[3]; o->y = c[4]; o->z = c[5]; o->lx = c[6]; o->ly = c[7]; o->phi = c[8];
      o->gh = c[9]; o->gb = c[10]; o->gq = c[11]; o->npx = (UInt_t)c[12]; o->vol = (UInt_t)c[13];
      o->pol = c[14]; o->ipol = (int)c[15]; o->color = 0; o->img = -1; o->ifr = (int)c[16];
      o->igr = (int)c[17]; o->imt = -1; o->is_nt = 0;
      k++;
    }
    k = 0;
    for (int i = 0; i < ngr; i++) {
      const double *g = gr + 17 * i;
      if ((int)g[0] != v) continue;
      DMRGrain *o = new ((*GR)[k]) DMRGrain();
      o->id = k; o->icp = 0; o->flags = (int)g[1]; o->x = g[2]; o->y = g[3]; o->z = g[4];
      o->ncl = (UInt_t)g[5]; o->npx = (UInt_t)g[6]; o->vol = (UInt_t)g[7];
      o->lx = g[8]; o->ly = g[9]; o->lz = g[10]; o->phi = g[11]; o->theta = g[12];
      o->frFirst = (int)g[13]; o->frLast = (int)g[14]; o->pol = 0; o->ipol = -1;
      o->ibfc = (int)g[15]; o->imt = -1; o->ipt = -1; o->is_nt = 0;
      k++;
    }
    k = 0;
    for (int i = 0; i < nfr; i++) {
      const double *r = fr + 10 * i;
      if ((int)r[0] != v) continue;
      DMRFrame *o = new ((*FR)[k]) DMRFrame();
      o->id = k; o->uid = i; o->ix = 0; o->iy = 0; o->iz = (int)r[1];
      o->ipol = (int)r[2]; o->flags = (int)r[3]; o->pol = r[4];
      o->x = r[5]; o->y = r[6]; o->z = r[7]; o->time = 1000.0 * v + k; o->ncl = 0;
      o->cols = cols; o->rows = rows; o->thres = 30; o->ll = 1.0;
      k++;
    }
    vdmr.Fill();
  }
  TTree frames("Frames", "raw frames");
  DMRFrameRaw *RAW = new DMRFrameRaw();
  frames.Branch("fr", "DMRFrameRaw", &RAW);
  int kraw = 0;
  for (int i = 0; i < nfr; i++) {
    const double *r = fr + 10 * i;
    if ((int)r[8] == 0) continue;  // this frame's raw image was not stored
    int v = (int)r[0];
    const double *h = hd + 12 * v;
    RAW->uid = i; RAW->ix = 0; RAW->iy = 0; RAW->iz = (int)r[1];
    RAW->ipol = (int)r[2]; RAW->flags = (int)r[3]; RAW->pol = r[4];
    RAW->x = r[5]; RAW->y = r[6]; RAW->z = r[7]; RAW->time = 1000.0 * v + kraw; RAW->ncl = 0;
    RAW->thres = 30; RAW->ll = 1.0; RAW->sensor = 0; RAW->color = 0;
    RAW->ventr = v; RAW->vid = (int)h[0]; RAW->aid = (int)h[1]; RAW->col = (int)h[2];
    RAW->row = (int)h[3]; RAW->side = (int)h[5];
    RAW->SetImage(cols, rows, (const char *)(img + (long)i * cols * rows));
    frames.Fill();
    kraw++;
  }
  DMRRunHeader *RH = new DMRRunHeader();
  RH->id = 1;
  for (int j = 0; j < 20; j++) RH->flags[j] = 0;
  RH->startTimeSys = 0; RH->nareas = 1; RH->comment = "emulsion-dl libDMRoot test fixture";
  RH->plateID = 1; RH->hUp = 50; RH->hBase = 0; RH->hDown = 0;
  RH->shrinkageUp = 1; RH->shrinkageDown = 1;
  RH->npixX = npixX; RH->npixY = npixY; RH->pixX = pixX; RH->pixY = pixY;
  f.cd();
  RH->Write("RunHeader");
  vdmr.Write();
  frames.Write();
  f.Close();
}
"""


def spot_centres(kind: str) -> np.ndarray:
    """(9, 2) spot centres (column, row) in the expected crop, continuous pixel coordinates
    (pixel i spans [i, i + 1)); row 8 is where the 180-degree repeat shows the spot."""
    d = (np.arange(9) - 3.5) * STEP_PX if kind == "track" else np.zeros(9)
    phi = np.radians(BEAM_PHI_DEG)
    # polarisation 0's centre sits at (20.4, 19.6): camera (U + 0.4, V + 0.4), see module doc
    c = 20.4 + (d - d[0]) * np.cos(phi)
    r = 19.6 + (d - d[0]) * np.sin(phi)
    return np.stack([c, r], axis=1)


def render(centres: np.ndarray, rng: np.random.Generator, sigma: float = SIGMA_PX,
           amp: float = AMP_ADU) -> np.ndarray:
    """(K, 40, 40) uint8 images with a Gaussian spot at each (column, row) centre."""
    grid = np.arange(CROP) + 0.5
    out = []
    for c, r in centres:
        img = amp * np.exp(-((grid[None, :] - c) ** 2 + (grid[:, None] - r) ** 2) / (2 * sigma ** 2))
        img = img + BACKGROUND_ADU + NOISE_ADU * rng.standard_normal((CROP, CROP))
        out.append(np.clip(np.rint(img), 1, 255).astype(np.uint8))
    return np.stack(out)


def paste(frame: np.ndarray, crop: np.ndarray, u: int, v: int) -> None:
    """Put an expected crop (rows along stage y) into camera window [u-20, u+20) x [v-20, v+20),
    rows reversed because pixY < 0; clipped at the frame edge."""
    cam = crop[::-1]
    r0, c0 = v - CROP // 2, u - CROP // 2
    rs, cs = slice(max(r0, 0), min(r0 + CROP, frame.shape[0])), slice(max(c0, 0), min(c0 + CROP, frame.shape[1]))
    frame[rs, cs] = cam[rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0]


def build(rng: np.random.Generator):
    """All objects of the run as flat tables, the frame images and the expected crops."""
    views = sorted(VIEW_FLAG)
    # frames per view: for each z-level [extra?] pol 0..7, merged, [extra?]
    frames = []  # dicts: view, iz, ipol, flags, pol, x, y, z, raw
    frame_index = {}  # (view, iz, label) -> global frame row
    view_frame_ids = {}  # (view, iz, label) -> index inside the view's fr array
    for v in views:
        hx, hy = 1000.0 + 60.0 * v, 2000.0 + 45.0 * (v % 2)
        k = 0
        n_z = 1 if v == 3 else N_Z
        for iz in range(n_z):
            labels = list(range(8)) + ["merged"]
            labels = (["extra"] + labels) if EXTRA_FIRST[v] else (labels + ["extra"])
            for lab in labels:
                ipol, flags, pol = (lab, 0, 22.5 * lab) if isinstance(lab, int) else \
                    ((0, 1, 0.0) if lab == "merged" else (0, 2, 180.0))
                # encoder offsets: every frame reads a slightly different stage position
                jx, jy = rng.uniform(-0.15, 0.15, 2)
                raw = 0 if (isinstance(lab, int) and (v, iz, lab) in MISSING_RAW) else 1
                frame_index[(v, iz, lab)] = len(frames)
                view_frame_ids[(v, iz, lab)] = k
                frames.append(dict(view=v, iz=iz, ipol=ipol, flags=flags, pol=pol, x=hx + jx, y=hy + jy,
                                   z=100.0 + 0.3 * iz, raw=raw))
                k += 1
    images = np.clip(np.rint(BACKGROUND_ADU + NOISE_ADU * rng.standard_normal((len(frames), NPIX_Y, NPIX_X))),
                     1, 255).astype(np.uint8)

    clusters, grains, expected, kinds, events = [], [], [], [], []
    n_cl = {v: 0 for v in views}
    n_gr = {v: 0 for v in views}
    for e, (v, u, vv, kind, bfc_iz) in enumerate(EVENTS):
        centres = spot_centres(kind)
        focus = render(centres, rng)  # (9, 40, 40): pols 0-7 and the 180-degree repeat
        defocus = render(centres, rng, sigma=2 * SIGMA_PX, amp=AMP_ADU / 3)
        n_z = 1 if v == 3 else N_Z
        igr = n_gr[v]
        n_gr[v] += 1
        bfc = []
        for iz in range(n_z):
            for p in range(8):
                img = focus[p] if bfc_iz[p] == iz else defocus[p]
                paste(images[frame_index[(v, iz, p)]], img, u, vv)
            paste(images[frame_index[(v, iz, "extra")]], focus[8] if iz == bfc_iz[0] else defocus[8], u, vv)
            merged = np.mean([focus[p] if bfc_iz[p] == iz else defocus[p] for p in range(8)], axis=0)
            paste(images[frame_index[(v, iz, "merged")]], np.rint(merged).astype(np.uint8), u, vv)
            # one cluster per frame of this z-level (pols, merged, extra)
            for lab in list(range(8)) + ["merged", "extra"]:
                fi = frame_index[(v, iz, lab)]
                fr = frames[fi]
                p = lab if isinstance(lab, int) else 0
                cidx = 8 if lab == "extra" else p
                col, row = centres[cidx]
                # camera coordinates: u_cam = U - 20 + col, v_cam = V + 20 - row (rows reversed)
                ucam, vcam = u - CROP // 2 + col, vv + CROP // 2 - row
                hx, hy = 1000.0 + 60.0 * v, 2000.0 + 45.0 * (v % 2)
                x = (ucam - NPIX_X / 2) * PIX_X_UM - hx + fr["x"]
                y = (vcam - NPIX_Y / 2) * PIX_Y_UM - hy + fr["y"]
                inimg = focus[cidx] if (isinstance(lab, int) and bfc_iz[p] == iz) else defocus[cidx]
                mask = inimg > BACKGROUND_ADU + 4 * NOISE_ADU
                in_focus = isinstance(lab, int) and bfc_iz[p] == iz
                if in_focus:
                    bfc.append((p, n_cl[v], x, y, int(mask.sum()), int(inimg[mask].sum())))
                clusters.append([v, 0, fr["flags"], x, y, -3.0 + 0.3 * iz, 0.2, 0.18,
                                 np.radians(22.5 * p + 12.0), AMP_ADU, BACKGROUND_ADU, 1.0,
                                 mask.sum(), inimg[mask].sum(), fr["pol"], fr["ipol"],
                                 view_frame_ids[(v, iz, lab)], igr, iz, 0])
                n_cl[v] += 1
        bfc.sort()
        vols = [b[5] for b in bfc]
        gx, gy = np.mean([b[2] for b in bfc]), np.mean([b[3] for b in bfc])
        grains.append([v, 0, gx, gy, -3.0 + 0.3 * np.bincount(bfc_iz).argmax(), 10 * n_z, sum(b[4] for b in bfc),
                       sum(vols), 0.25, 0.2, 0.4, 0.3, 0.1, 0, 0, bfc[int(np.argmax(vols))][1], 0])
        events.append(dict(event=e, view=v, grain=igr, kind=kind, bfc=[b[1] for b in bfc]))
        expected.append(focus[:8])
        kinds.append(kind)
    for v in views:  # grains found by the online software but not in the list
        for _ in range(OTHER_GRAINS[v]):
            gx, gy = rng.uniform(-25, 25), rng.uniform(-20, 20)
            grains.append([v, 0, gx, gy, 0.0, 0, 0, 0, 0.2, 0.2, 0.3, 0.0, 0.0, 0, 0, -1, 0])
            n_gr[v] += 1
    # a corrupt cluster of view 2 (pol 4) whose frame index is not in the view
    corrupt = n_cl[2]
    clusters.append([2, 0, 0, 0.0, 0.0, -3.0, 0.2, 0.18, 0.0, AMP_ADU, BACKGROUND_ADU, 1.0, 20, 2000,
                     90.0, 4, 999, 0, 0, 0])
    n_cl[2] += 1
    # a grain of the merged images (flags 1): counted in gr, not an event
    grains.append([0, 1, 0.0, 0.0, 0.0, 1, 1, 1, 0.2, 0.2, 0.3, 0.0, 0.0, 0, 0, -1, 0])
    n_gr[0] += 1
    return frames, images, clusters, grains, events, np.stack(expected), kinds, n_cl, n_gr, corrupt


def grain_lines(events: list, n_cl: dict, corrupt: int) -> tuple[list, list]:
    """Grain-list rows (header, view id, grain, 8 clusters, tr_flag, n_pol) and the events kept."""
    rows, kept = [], []
    for ev in events:
        e, v, clusters = ev["event"], ev["view"], list(ev["bfc"])
        u, vv = EVENTS[e][1], EVENTS[e][2]
        keep = True
        if v == 1 and (u, vv) == (24, 72):
            clusters[5] = -1
            keep = False
        elif v == 1 and (u, vv) == (64, 72):
            clusters[6] = n_cl[v] + 100
            keep = False
        elif v == 1 and (u, vv) == (104, 72):
            clusters[2] = clusters[3]
            keep = False
        elif (u, vv) == (124, 72) or v == 3 or (v == 2 and (u, vv) == (64, 24)):
            keep = False
        tr_flag = -1
        n_pol = sum(c >= 0 for c in clusters)
        rows.append([v, v, ev["grain"]] + clusters + [tr_flag, n_pol])
        kept.append(keep)
    # a view entry beyond the tree and a grain index beyond the view's grains
    rows.append([9] + [9] + [0] + list(range(8)) + [-1, 8])
    kept.append(False)
    rows.append([0, 0, 99] + events[0]["bfc"] + [-1, 8])
    kept.append(False)
    # polarisation 4 pointing at the corrupt cluster, whose frame is not in the view
    ev = next(e for e in events if e["view"] == 2)
    rows.append([2, 2, ev["grain"]] + ev["bfc"][:4] + [corrupt] + ev["bfc"][5:] + [-1, 8])
    kept.append(False)
    return rows, kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "fixtures"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    frames, images, clusters, grains, events, expected, kinds, n_cl, n_gr, corrupt = build(rng)
    rows, kept = grain_lines(events, n_cl, corrupt)

    # self-check: (u0, v0) of polarisation 0 in float32, as the converter will compute it
    for ev in events:
        c = clusters[_global_cluster(clusters, ev["view"], ev["bfc"][0])]
        fr = frames[[i for i, f in enumerate(frames) if f["view"] == ev["view"]][int(c[16])]]
        hx, hy = np.float32(1000.0 + 60.0 * ev["view"]), np.float32(2000.0 + 45.0 * (ev["view"] % 2))
        ucam = (np.float64(np.float32(c[3])) + hx - np.float64(np.float32(fr["x"]))) / np.float32(PIX_X_UM) + NPIX_X / 2
        vcam = (np.float64(np.float32(c[4])) + hy - np.float64(np.float32(fr["y"]))) / np.float32(PIX_Y_UM) + NPIX_Y / 2
        _, u, vv, _, _ = EVENTS[ev["event"]]
        assert (int(np.floor(ucam)), int(np.floor(vcam))) == (u, vv), (ev, ucam, vcam)

    import ROOT  # the PyPI `root` wheel; imported late so --help works without it

    ROOT.gInterpreter.Declare(CLASSES)
    views = sorted(VIEW_FLAG)
    hd = []
    for v in views:
        ncl = sum(1 for c in clusters if c[0] == v)
        nfr = sum(1 for f in frames if f["view"] == v)
        hd.append([v, 1, v, v % 2, VIEW_FLAG[v], 0, 1000.0 + 60.0 * v, 2000.0 + 45.0 * (v % 2), 100.15,
                   ncl, n_gr[v], nfr])
    fr_rows = [[f["view"], f["iz"], f["ipol"], f["flags"], f["pol"], f["x"], f["y"], f["z"], f["raw"], 0]
               for f in frames]
    arr = lambda rows_: np.ascontiguousarray(np.asarray(rows_, dtype=np.float64).reshape(-1))  # noqa: E731
    hd_a, cl_a, gr_a, fr_a = arr(hd), arr(clusters), arr(grains), arr(fr_rows)
    img = np.ascontiguousarray(images.reshape(-1))
    path = out / "libdmroot_run.dm.root"
    ROOT.write_dmr_fixture(str(path), len(views), hd_a, len(clusters), cl_a, len(grains), gr_a,
                           len(frames), fr_a, img, NPIX_X, NPIX_Y, NPIX_X, NPIX_Y,
                           PIX_X_UM, PIX_Y_UM)

    with open(out / "libdmroot_grains_comma.txt", "w") as f:
        for r in rows:
            f.write(",".join(str(int(x)) for x in r[:11]) + "\n")
    with open(out / "libdmroot_grains_trflag.txt", "w") as f:
        for r in rows:
            f.write(",".join(str(int(x)) for x in r[:11]) + " " + " ".join(str(int(x)) for x in r[11:]) + "\n")
    keep_ev = [i for i, k in enumerate(kept[:len(events)]) if k]
    np.savez_compressed(out / "libdmroot_expected.npz", crops=expected[keep_ev],
                        kind=np.asarray([kinds[i] for i in keep_ev]),
                        header_id=np.asarray([events[i]["view"] for i in keep_ev]),
                        grain_id=np.asarray([events[i]["grain"] for i in keep_ev]),
                        view_density=np.asarray([sum(1 for g in grains if g[0] == events[i]["view"] and g[1] == 0)
                                                 for i in keep_ev]),
                        beam_phi_deg=BEAM_PHI_DEG, pixel_size_nm=abs(PIX_X_UM) * 1000.0)
    for p in sorted(out.glob("libdmroot_*")):
        print(f"{p}: {p.stat().st_size} bytes")
    return 0


def _global_cluster(clusters: list, view: int, index_in_view: int) -> int:
    """Row of the ``index_in_view``-th cluster of ``view`` in the flat cluster table."""
    rows = [i for i, c in enumerate(clusters) if c[0] == view]
    return rows[index_in_view]


if __name__ == "__main__":
    raise SystemExit(main())
