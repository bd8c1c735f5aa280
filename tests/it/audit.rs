// audit tests come next
