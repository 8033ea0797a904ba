"""Where training and evaluation pairs come from, split by scene: ``items`` (what every source gives,
and the loader), ``photos`` (the shipped photos and their split), ``rendered`` (pairs rendered from
them or from a folder of your own photos), ``photofiles`` (reading photo files, the resize cache),
``filepairs`` (folders of ready-made pairs) and ``msec`` (the MSEC dataset)."""
