"""Line drawings to colour paintings (issue 11): U-Net over auto-Canny edges -> posterised colour classes."""
