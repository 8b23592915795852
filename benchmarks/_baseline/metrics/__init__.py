"""Frozen copy of the MS-SSIM function as of commit 13bb0df (the issue-20 baseline)."""
