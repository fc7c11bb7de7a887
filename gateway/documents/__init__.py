"""edXML documents: hardened parsing, schema validation, signing, verification, trust and seals."""
