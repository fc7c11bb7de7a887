"""Who may send what to whom, and getting accepted documents to their recipients."""
