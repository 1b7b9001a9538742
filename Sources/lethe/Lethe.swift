import ArgumentParser
@main struct Lethe: ParsableCommand {}
