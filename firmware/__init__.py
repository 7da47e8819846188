# Lets the host import the shared firmware modules (the wire codec, config
# validation) as deskline.firmware; never deployed to a console.
