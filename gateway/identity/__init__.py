"""Who is calling: departmental systems (client assertions, gateway access tokens) and, later, citizens."""
