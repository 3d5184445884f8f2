package main

func runSoak(o options) int { return 2 }
