"""Citizens acting with their national electronic identity: procedures, dossiers and their status."""
