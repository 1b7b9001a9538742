// Spec users work with JSON values, pointers and source marks; they come with LetheSpec.
@_exported import LetheJSON
