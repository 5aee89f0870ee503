"""Rules of the wire and of the clinic that need no Django: shared by the order form, the services and the bridge."""
